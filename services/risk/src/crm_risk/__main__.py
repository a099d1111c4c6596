"""`python -m crm_risk [serve|migrate]`."""

from crm_risk.app import SPEC
from crmkit import app


def main() -> None:
    app.main(SPEC)


if __name__ == "__main__":
    main()
