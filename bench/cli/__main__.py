"""`python -m bench.cli`."""

from bench.cli import main

if __name__ == "__main__":  # not when a spawned worker process re-imports the main module (as __mp_main__)
    main()
