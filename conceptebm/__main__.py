from conceptebm.cli import main

raise SystemExit(main())
