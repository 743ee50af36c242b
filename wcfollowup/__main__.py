from wcfollowup.cli import main

main()
