"""The demo's scenario, shared by ``edgesplit demo`` and ``edgesplit build-policy`` (which builds its policy).

EdgeML-like (IoTDI '21): a 100 ms latency bound and an energy bound, a real varying bandwidth. The
shipped MNIST model is far too cheap to make offloading worth anything on any real board (2.8 M MACs:
about 1 ms on a Jetson Nano's CPU), so the EMULATED board is paced as if the model were as heavy as
EdgeML's headline model, VGG16 on CIFAR-10 (about 313 M MACs: ``workload_scale`` 112), on the Jetson
Nano's CPU; and the bandwidth recording's rates are scaled by ``link_scale`` = 3136 / 12288, the MNIST input's size
over a CIFAR-10 input's, so sending a tensor takes as long as sending that model's would. Both
choices are stated in the demo's output.

One image arrives every 100 ms (a 10 frame/s camera), as long as the latency bound: a device that
keeps within the bound never builds a queue, and one that does not (the whole model on the
emulated board takes 124 ms) pays for it in the next tasks too. The recording is replayed twice as fast
as recorded, so 500 images (50 emulated seconds) cover 100 s of the commute.
"""
DEMO = {
    "board": "jetson_nano_cpu",
    "workload_scale": 112.0,
    "latency_bound_s": 0.100,
    "energy_bound_mj": 900.0,
    "recording": "norway_car_3",
    "link_scale": 3136.0 / 12288.0,
    "rtt_s": 0.020,
    "recording_speed": 2.0,
    "period_s": 0.100,
    # Emulated time runs 1.5x real time (about 36 s for 500 images). Faster runs are noisier: five
    # streams share one process and two cores, and timing jitter is multiplied by the speedup.
    "speedup": 1.5,
    "profiling_bandwidth_mbps": 1.75 * 3136.0 / 12288.0,
}
