from wdm_lib.cli import main

raise SystemExit(main())
