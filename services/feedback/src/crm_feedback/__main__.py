"""`python -m crm_feedback [serve|migrate]`."""

from crm_feedback.app import SPEC
from crmkit import app


def main() -> None:
    app.main(SPEC)


if __name__ == "__main__":
    main()
