"""`python -m crm_segment [serve|migrate]`."""

from crm_segment.app import SPEC
from crmkit import app


def main() -> None:
    app.main(SPEC)


if __name__ == "__main__":
    main()
