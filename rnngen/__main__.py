"""`python -m rnngen` (also what `torchrun -m rnngen` runs)."""

from rnngen.cli import main

if __name__ == "__main__":
    main()
