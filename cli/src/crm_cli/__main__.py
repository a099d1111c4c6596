"""`python -m crm_cli`, the same as the installed `crm` command."""

from crm_cli.main import main

if __name__ == "__main__":
    main()
