"""A perf_counter that advances one second per call: budget checks of the Lava runners become deterministic."""


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t
