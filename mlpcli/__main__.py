from mlpcli.cli import main

main()
