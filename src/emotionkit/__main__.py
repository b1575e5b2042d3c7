"""``python -m emotionkit`` runs the command line."""

from .cli import main

main()
