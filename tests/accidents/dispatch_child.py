"""Child process for ``test_insurer_kill``: one insurer dispatch against a webhook URL.

    python tests/accidents/dispatch_child.py <database url> <key dir> <webhook url>

Every insurer's URL is pointed at ``<webhook url>`` (in this process only), then
:func:`safecity.accidents.insurers.dispatch` sends the due notices once, as the
``accidents.insurers`` job does. The test kills this process with SIGKILL mid-delivery.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import safecity.models  # noqa: F401  (registers every table)
from safecity.accidents import insurers
from safecity.platform.db import make_engine, make_session_factory


def main(database_url: str, key_dir: str, webhook: str) -> int:
    for code, insurer in list(insurers.INSURERS.items()):
        insurers.INSURERS[code] = dataclasses.replace(insurer, url=webhook)
    engine = make_engine(database_url)
    print("dispatching", flush=True)
    report = insurers.dispatch(make_session_factory(engine), key_dir=Path(key_dir))
    print(f"acked={report.acked} retrying={report.retrying} failed={report.failed}", flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
