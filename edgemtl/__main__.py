from edgemtl.cli import main

raise SystemExit(main())
