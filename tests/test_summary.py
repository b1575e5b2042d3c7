"""``emotionkit summary``: per-face shares and the timeline plot of detect's video rows."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import cli_json
from emotionkit.cli import main

HEADER = "path,frame,time,face_id,x,y,w,h,score,top_emotion,bright,dark\n"


@pytest.fixture
def rows_csv(tmp_path: Path) -> Path:
    """Face 0 in 4 frames (3 bright, 1 dark); face 1 in 2 frames (dark)."""
    lines = [
        "v.mp4,0,0.0000,0,10,10,50,50,0.9,bright,0.9000,0.1000",
        "v.mp4,0,0.0000,1,200,10,50,50,0.9,dark,0.2000,0.8000",
        "v.mp4,1,0.1000,0,12,10,50,50,0.9,bright,0.8000,0.2000",
        "v.mp4,1,0.1000,1,202,10,50,50,0.9,dark,0.4000,0.6000",
        "v.mp4,2,0.2000,0,14,10,50,50,0.9,bright,0.7000,0.3000",
        "v.mp4,3,0.3000,0,16,10,50,50,,dark,0.2000,0.8000",
    ]
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def test_json_summary(rows_csv: Path) -> None:
    res = CliRunner().invoke(main, ["summary", str(rows_csv), "--format", "json"])
    assert res.exit_code == 0, res.output
    face0, face1 = json.loads(res.output)
    assert face0["face_id"] == 0 and face0["frames"] == 4
    assert (face0["start"], face0["end"]) == (0.0, 0.3)
    assert face0["share"] == {"bright": 0.75, "dark": 0.25}
    assert face0["mean"]["bright"] == pytest.approx(0.65)
    assert face1["share"] == {"bright": 0.0, "dark": 1.0}


def test_table_and_plot(rows_csv: Path, tmp_path: Path) -> None:
    png = tmp_path / "plots" / "timeline.png"
    res = CliRunner().invoke(main, ["summary", str(rows_csv), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "v.mp4: face #0: 4 frames, 0.00-0.30 s: bright 75%, dark 25%" in res.output
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_csv_summary(rows_csv: Path) -> None:
    res = CliRunner().invoke(main, ["summary", str(rows_csv), "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == ("path,face_id,frames,start,end,share_bright,share_dark,"
                        "mean_bright,mean_dark")
    assert len(lines) == 3


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    image_rows = tmp_path / "images.csv"
    image_rows.write_text("path,face,x,y,w,h,score,top_emotion,bright,dark\n")
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER)
    for path, message in [(image_rows, "not a video results csv"),
                          (empty, "holds no face rows"),
                          (tmp_path / "missing.csv", "cannot read")]:
        res = CliRunner().invoke(main, ["summary", str(path)])
        assert res.exit_code == 1
        assert res.output.startswith("error:") and message in res.output, res.output


def test_cut_off_row_and_unwritable_plot_are_one_line_errors(rows_csv: Path,
                                                                  tmp_path: Path) -> None:
    cut = tmp_path / "cut.csv"
    cut.write_text(rows_csv.read_text() + "v.mp4,4,0.4000,0,18\n")  # a row cut off mid-write
    res = CliRunner().invoke(main, ["summary", str(cut)])
    assert res.exit_code == 1 and res.output.startswith(f"error: {cut}: malformed results csv")
    res = CliRunner().invoke(main, ["summary", str(rows_csv), "--plot",
                                    str(tmp_path / "t.jpgx")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.splitlines()[-1].startswith("error: ")
    assert "use a .png file name" in res.output
    afile = tmp_path / "afile"
    afile.write_text("a regular file")
    res = CliRunner().invoke(main, ["summary", str(rows_csv), "--plot", str(afile / "t.png")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.splitlines()[-1] == (f"error: {afile / 't.png'}: cannot write the plot "
                                           "(a folder on its path is a file); choose another "
                                           "--plot path")


def test_results_csv_resaved_with_bom_and_spaces_reads_the_same(rows_csv: Path,
                                                                 tmp_path: Path) -> None:
    """A spreadsheet's re-save: a UTF-8 byte-order mark, spaces after the commas."""
    from conftest import spreadsheet_resave

    resaved = spreadsheet_resave(rows_csv, tmp_path / "resaved.csv")
    results = [cli_json("summary", str(path), "--format", "json") for path in (rows_csv, resaved)]
    assert results[1] == results[0]
    assert [face["face_id"] for face in results[1]] == [0, 1]


@pytest.mark.parametrize(("row", "message"), [
    ("v.mp4,x,0.4000,0,18,10,50,50,0.9,bright,0.9000,0.1000",
     "frame 'x' is not a whole number >= 0"),
    ("v.mp4,4,nan,0,18,10,50,50,0.9,bright,0.9000,0.1000",
     "time 'nan' is not a number of seconds >= 0"),
    ("v.mp4,4,inf,0,18,10,50,50,0.9,bright,0.9000,0.1000",
     "time 'inf' is not a number of seconds >= 0"),
    ("v.mp4,4,0.4000,0,18,10,50,50,0.9,happy,0.9000,0.1000",
     "top_emotion 'happy' is not one of the label columns (bright, dark)"),
    ("v.mp4,4,0.4000,0,18,10,50,50,0.9,bright,inf,0.1000",
     "bright 'inf' is not a probability from 0 to 1"),
    ("v.mp4,4,0.4000,0,18,10,50,50,0.9,bright,0.9000,-0.1000",
     "dark '-0.1000' is not a probability from 0 to 1"),
    ("v.mp4,4,0.4000,0,18,10,50,50,0.9,bright,1.5000,0.1000",
     "bright '1.5000' is not a probability from 0 to 1"),
    ("v.mp4,2,0.2000,0,14,10,50,50,0.9,bright,0.7000,0.3000",
     "face 0 of v.mp4 at frame 2 again (first on line 6); remove the repeated row"),
    ("v.mp4,4,0.4000,0,18,10,50,50,0.9,bright,0.9000,0.1000,0.5",
     "13 values, the header has 12"),
])
def test_malformed_values_are_one_line_errors_naming_the_line(rows_csv: Path, row: str,
                                                              message: str) -> None:
    bad = rows_csv.with_name("bad.csv")
    bad.write_text(rows_csv.read_text() + row + "\n")  # line 8
    res = CliRunner().invoke(main, ["summary", str(bad)])
    assert res.exit_code == 1
    assert res.output == f"error: {bad}: malformed results csv (line 8: {message})\n"


def test_csv_without_label_columns_is_an_error_before_plotting(rows_csv: Path,
                                                              tmp_path: Path) -> None:
    no_labels = tmp_path / "no-labels.csv"
    no_labels.write_text("".join(",".join(line.split(",")[:10]) + "\n"
                                 for line in rows_csv.read_text().splitlines()))
    png = tmp_path / "t.png"
    res = CliRunner().invoke(main, ["summary", str(no_labels), "--plot",
                                    str(png)])
    assert res.exit_code == 1 and res.stdout == "" and not png.exists()
    assert res.stderr == (f"error: {no_labels}: not a video results csv (the columns after "
                          "top_emotion must be the labels' probabilities, named once each; "
                          "found none); write one with `emotionkit detect VIDEO --format "
                          "csv`\n")


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory, frame_640x480: np.ndarray) -> Path:
    """A real 6-frame 10 frames/s MJPEG .avi of the astronaut's face drifting right."""
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i in range(6):
        writer.write(np.roll(frame_640x480, 4 * i, axis=1))
    writer.release()
    return path


def test_what_detect_writes_is_read_and_a_video_given_twice_is_two_runs(
        face_clip: Path, brightness_model_dir: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    res = CliRunner().invoke(main, ["detect", str(face_clip), str(face_clip), "-c",
                                    str(brightness_model_dir), "--format", "csv", "--quiet",
                                    "-o", str(rows)])
    assert res.exit_code == 0, res.output
    assert len(rows.read_text().splitlines()) == 1 + 2 * 6  # one face in every frame, twice
    first, second = cli_json("summary", str(rows), "--format", "json")
    assert first == second
    assert (first["path"], first["face_id"], first["frames"]) == (str(face_clip), 0, 6)
    assert (first["start"], first["end"]) == (0.0, 0.5)
    assert sum(first["share"].values()) == pytest.approx(1)
