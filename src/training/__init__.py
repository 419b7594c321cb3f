"""What keeps a long training run going: ``divergence_guard`` rejects diverging steps and rolls back, ``resume``
finds an experiment's checkpoint and config to continue from, ``stop_signal`` turns SIGINT/SIGTERM into a checkpoint
and a clean exit."""
