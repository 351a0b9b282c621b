from tickerterm.cli import main

raise SystemExit(main())
