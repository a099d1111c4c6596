"""`python -m crm_profile [serve|migrate]`."""

from crmkit import app

from crm_profile.app import SPEC


def main() -> None:
    app.main(SPEC)


if __name__ == "__main__":
    main()
