"""`python -m crm_profile [serve|migrate]`."""

from crm_profile.app import SPEC
from crmkit import app


def main() -> None:
    app.main(SPEC)


if __name__ == "__main__":
    main()
