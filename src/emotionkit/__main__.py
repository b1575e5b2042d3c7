"""``python -m emotionkit`` runs the command line."""

from .cli import run

run()
