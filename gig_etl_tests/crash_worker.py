"""The process the crash test kills: one refresh of an integration (drain, load,
marts) through the real assets, with small raw batches so that a run passes many
checkpoints. Usage: python -m gig_etl_tests.crash_worker HOME INTEGRATION BATCH_MESSAGES"""

import sys
from pathlib import Path

from gig_etl_tests.pipeline import failure_text, materialize_integration


def main() -> int:
    home, integration, batch_messages = sys.argv[1:4]
    print("started", flush=True)  # imports done: from here on the run does real work
    result = materialize_integration(
        Path(home), integration, raise_on_error=False, batch_max_messages=int(batch_messages)
    )
    if not result.success:
        print(failure_text(result), file=sys.stderr)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
