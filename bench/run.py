"""The benchmark is ``spikard bench`` (in spikard-devtools); this runs it from a
checkout, with the same options:

    python bench/run.py [--quick] [--workload NAME] [--framework NAME] [--against CMD] ...

What the old runner's options became: ``--variants logged,stats`` is
``--framework spikard,spikard-logged,spikard-stats`` (frameworks.json lists them);
``--baseline DIR`` and ``--python NAME=PYTHON`` are ``--against`` with the command
that serves the other build, e.g.
``--against "env PYTHONPATH=DIR python -m spikard run bench/apps/spikard_app.py --port {port} --no-access-log"``.
Set-up: bash bench/setup.sh.
"""

import sys

from spikard_devtools.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
