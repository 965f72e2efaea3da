"""`python -m seisflows_eara.direction ARGS` = `seisflows-eara direction ARGS` (what a direction job
runs under mpiexec: the interpreter of the run, no console script needed on the nodes' PATH)."""
import sys

from seisflows_eara.cli import main

sys.exit(main(["direction", *sys.argv[1:]]))
