"""`python -m crm_campaign [serve|migrate]`."""

from crm_campaign.app import SPEC
from crmkit import app


def main() -> None:
    app.main(SPEC)


if __name__ == "__main__":
    main()
