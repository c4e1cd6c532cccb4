"""`python -m ganaug`: the same as the `ganaug` command."""

from ganaug.cli import main

if __name__ == "__main__":
    main()
