"""Shared builders for the policies_lite tests ."""

FEATURES = ["latency_mean_s", "energy_mean", "bandwidth_mean_bps", "rtt_s", "queue_len", "gpu_freq_hz",
            "temperature_c", "peer_alive"]


def mlp_layers(rng, sizes):
    return [(rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)) for n_in, n_out in
            zip(sizes[:-1], sizes[1:])]
