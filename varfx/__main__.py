from varfx.cli import main

main()
