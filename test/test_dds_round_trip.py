"""The transport-floor benchmark runs its two processes and answers every frame (numbers are not checked)."""
import pytest

from urcdc_ros import dds_round_trip


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_round_trip_with_points_answers_every_frame(capsys):
    assert dds_round_trip.main(["--points", "--frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "round trip, 3 frames, depth, uncertainty, camera_info, points" in out and "all outputs" in out
