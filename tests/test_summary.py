"""``emotionkit summary``: per-face shares and the timeline plot of detect's video rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _lines(path: Path) -> tuple[str, list[str]]:
    header, *rows = path.read_text().splitlines()
    return header, rows


def _by(*columns: int) -> Any:
    """A sort key on the csv columns numbered ``columns`` (as numbers), as a spreadsheet's
    stable sort by those columns."""
    return lambda line: tuple(float(line.split(",")[c]) for c in columns)


def test_a_video_given_twice_and_rows_re_sorted_reads_as_two_runs(
        face_clip: Path, brightness_model_dir: Path, tmp_path: Path) -> None:
    """The rows of ``detect CLIP CLIP``, sorted by face id and frame in a spreadsheet: the
    same two runs as in detect's order, not a 'repeated row' error."""
    rows = tmp_path / "rows.csv"
    res = CliRunner().invoke(main, ["detect", str(face_clip), str(face_clip), "-c",
                                    str(brightness_model_dir), "--format", "csv", "--quiet",
                                    "-o", str(rows)])
    assert res.exit_code == 0, res.output
    header, lines = _lines(rows)
    expected = cli_json("summary", str(rows), "--format", "json")
    assert len(expected) == 2
    for key in (_by(3, 1), _by(1), _by(2, 3)):  # face id and frame; frame; time and face id
        resorted = tmp_path / "resorted.csv"
        resorted.write_text("\n".join([header, *sorted(lines, key=key)]) + "\n")
        assert cli_json("summary", str(resorted), "--format", "json") == expected


def _runs_csv(path: Path, runs: int, extra: list[str] = (), drop: int | None = None) -> Path:
    """Face 0 and 1 in frames 0-3 of v.mp4, the video given ``runs`` times, the rows sorted
    by face id and frame (a spreadsheet's sort), then ``extra`` rows; row ``drop`` left
    out."""
    one = [f"v.mp4,{frame},{frame / 10:.4f},{face},10,10,50,50,0.9,"
           f"{'bright' if (frame + face) % 2 else 'dark'},0.{6 - face}000,0.{4 + face}000"
           for frame in range(4) for face in range(2)]
    lines = sorted(one * runs, key=_by(3, 1))
    if drop is not None:
        del lines[drop]
    path.write_text(HEADER + "\n".join([*lines, *extra]) + "\n")
    return path


def test_re_sorted_runs_summarise_as_in_detects_order(tmp_path: Path) -> None:
    in_order = cli_json("summary", str(_runs_csv(tmp_path / "once.csv", 1)), "--format", "json")
    for runs in (2, 3):
        got = cli_json("summary", str(_runs_csv(tmp_path / "runs.csv", runs)), "--format", "json")
        assert got == in_order * runs  # run by run, each run's faces in order


@pytest.mark.parametrize(("runs", "extra", "drop", "line", "message"), [
    # one run: a repeated row is one (the old message)
    (1, ["v.mp4,2,0.2000,1,10,10,50,50,0.9,dark,0.5000,0.5000"], None, 10,
     "face 1 of v.mp4 at frame 2 again (first on line 8); remove the repeated row"),
    # a repeat of the video's first row is not a second run of it when the rows are sorted
    (1, ["v.mp4,0,0.0000,0,10,10,50,50,0.9,dark,0.6000,0.4000"], None, 10,
     "face 0 of v.mp4 at frame 0 again (first on line 2); remove the repeated row"),
    (2, ["v.mp4,2,0.2000,1,10,10,50,50,0.9,dark,0.5000,0.5000"], None, 18,
     "face 1 of v.mp4 at frame 2 on 3 rows (also lines 14, 15), where its other rows "
     "are there 2 times each (the video given 2 times to detect); remove the repeated row"),
    (2, [], 5, 6,
     "face 0 of v.mp4 at frame 2 on 1 row (line 6), where its other rows are there 2 "
     "times each (the video given 2 times to detect, the rows re-ordered), so its runs "
     "cannot be told apart; keep the rows in detect's order or write them again with "
     "detect"),
])
def test_rows_repeated_unevenly_are_one_line_errors_that_say_why(
        tmp_path: Path, runs: int, extra: list[str], drop: int | None, line: int,
        message: str) -> None:
    bad = _runs_csv(tmp_path / "bad.csv", runs, extra, drop)
    res = CliRunner().invoke(main, ["summary", str(bad)])
    assert res.exit_code == 1
    assert res.output == f"error: {bad}: malformed results csv (line {line}: {message})\n"


def test_rows_of_two_videos_sorted_by_face_id_keep_detects_order(tmp_path: Path) -> None:
    """Videos in order of first appearance, each video's faces together, as detect wrote
    them; each face's frames in time order whatever the order of the rows."""
    from emotionkit.summary import read_timelines

    lines = [f"{video},{frame},{frame / 10:.4f},{face},10,10,50,50,0.9,bright,"
             f"0.{5 + frame}000,0.{5 - frame}000"
             for video in ("a.mp4", "b.mp4") for frame in range(4) for face in range(2)]
    detect_order = tmp_path / "rows.csv"
    detect_order.write_text(HEADER + "\n".join(lines) + "\n")
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text(HEADER + "\n".join(sorted(lines, key=_by(3, 6))) + "\n")  # face, x
    expected = cli_json("summary", str(detect_order), "--format", "json")
    assert [(s["path"], s["face_id"]) for s in expected] == [
        ("a.mp4", 0), ("a.mp4", 1), ("b.mp4", 0), ("b.mp4", 1)]
    assert cli_json("summary", str(shuffled), "--format", "json") == expected
    reversed_rows = tmp_path / "reversed.csv"
    reversed_rows.write_text(HEADER + "\n".join(reversed(lines)) + "\n")
    for timeline in read_timelines(reversed_rows):
        assert timeline.times == [0.0, 0.1, 0.2, 0.3]  # plotted left to right
        assert [p[0] for p in timeline.probs] == [0.5, 0.6, 0.7, 0.8]


def test_plot_of_video_and_label_names_that_are_not_utf8(tmp_path: Path) -> None:
    """detect writes a Latin-1 video name's bytes as they are; a spreadsheet may re-save
    the whole file as Latin-1 (labels too)."""
    rows = tmp_path / "latin1.csv"
    rows.write_bytes("path,frame,time,face_id,x,y,w,h,score,top_emotion,fröhlich,müde\n"
                     "vidéo.mp4,0,0.0,0,1,1,5,5,0.9,fröhlich,0.8,0.2\n"
                     "vidéo.mp4,1,0.1,0,1,1,5,5,0.9,müde,0.3,0.7\n".encode("latin-1"))
    png = tmp_path / "t.png"
    res = CliRunner().invoke(main, ["summary", str(rows), "--plot", str(png), "--format",
                                    "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["share"] == {"fr\udcf6hlich": 0.5, "m\udcfcde": 0.5}
    assert matplotlib.image.imread(png).shape[0] > 100


def test_plot_of_many_faces_shows_those_seen_longest(tmp_path: Path) -> None:
    """A long video's tracker gives a face a new id after each lost track: hundreds of
    faces would make a plot hundreds of panels (and minutes) long."""
    lines = [f"v.mp4,{frame},{frame / 10:.4f},{face},10,10,50,50,0.9,bright,0.6,0.4"
             for face in range(45) for frame in range(1 + (face == 40) + 2 * (face == 7))]
    rows = tmp_path / "rows.csv"
    rows.write_text(HEADER + "\n".join(lines) + "\n")
    png = tmp_path / "t.png"
    res = CliRunner().invoke(main, ["summary", str(rows), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") == 45  # the summary has every face
    assert res.stderr == (f"note: plotted the 30 faces seen in the most frames, of 45\n"
                          f"wrote {png}\n")
    height = matplotlib.image.imread(png).shape[0]  # 30 panels of 2.2 in at 100 dpi:
    assert abs(height - 100 * (2.2 * 30 + 0.6)) <= 1  # matplotlib < 3.11 truncates
