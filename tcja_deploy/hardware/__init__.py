"""Hardware stage: Lava processes, runners (simulator, Loihi 2), bit-exact emulator, counters,
energy profiles and the report writer."""
