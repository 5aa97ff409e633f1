"""``python -m graftzoo`` is ``graft``."""

from graftzoo.cli import main

if __name__ == "__main__":
    main()
