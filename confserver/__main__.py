from confserver.cli import main

raise SystemExit(main())
