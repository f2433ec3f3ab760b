from deepstationing.cli.main import main

raise SystemExit(main())
