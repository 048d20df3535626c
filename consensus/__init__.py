"""Sans-I/O PBFT replica (Castro & Liskov): messages, quorums, log, checkpoints, view change."""
