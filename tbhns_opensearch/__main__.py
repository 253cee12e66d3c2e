"""`python -m tbhns_opensearch`: the `tbhns` command, as torchrun starts it on each process
(`torchrun --nproc-per-node N -m tbhns_opensearch train CONFIG`)."""

from tbhns_opensearch.cli import main

if __name__ == "__main__":
    main()
