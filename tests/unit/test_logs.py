"""A job killed by its machine (disk full, read-only output) says so in one line."""

import errno
import subprocess
import sys

from conftest import REPO
from mirflow.logs import environment_advice


def test_disk_full_and_read_only_get_a_line_other_errors_none():
    full = OSError(errno.ENOSPC, "No space left on device", "/out/crops/a.flac")
    assert environment_advice(full) == (
        "mirflow: the disk is full (/out/crops/a.flac): fix that, then run again; "
        "what finished is kept and nothing needs cleaning by hand"
    )
    assert "read-only file system" in environment_advice(OSError(errno.EROFS, "Read-only"))
    assert environment_advice(OSError(errno.ENOENT, "No such file")) == ""
    assert environment_advice(ValueError("bug")) == ""


def test_an_uncaught_disk_full_error_is_logged_with_its_line(tmp_path):
    log = tmp_path / "job.log"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "import errno\n"
        "from mirflow.logs import log_to_file\n"
        f"log_to_file({str(log)!r})\n"
        "raise OSError(errno.ENOSPC, 'No space left on device')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "OSError: [Errno 28] No space left on device" in result.stderr
    assert "mirflow: the disk is full: fix that, then run again" in result.stderr
    assert "mirflow: the disk is full" in log.read_text()
