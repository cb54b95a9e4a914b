"""``benchmarks.perf_split``: which process of a run spent the CPU, read from a hand-made
``perf script --show-task-events`` text in the format ``perf`` 6.x prints."""

from __future__ import annotations

from benchmarks.perf_split import parse, split, timeline

Q = 250000  # one sample: 0.25 ms


def _sample(comm, pid, t, n=1):
    return ["%16s %d/%d %12.6f: %10d cpu-clock: " % (comm, pid, pid, t + i * 0.00025, Q) for i in range(n)]


def _fork(comm, parent, child, t):
    return "%16s %d/%d %12.6f: PERF_RECORD_FORK(%d:%d):(%d:%d)" % (comm, parent, parent, t, child, child, parent, parent)


def _exec(comm, pid, t):
    return "%16s %d/%d %12.6f: PERF_RECORD_COMM exec: %s:%d/%d" % (comm, pid, pid, t, comm, pid, pid)


def _run():
    lines = [
        _fork("python", 100, 101, 1.0),  # the supervisor starts the playbook
        _exec("ansible-playboo", 101, 1.0),
        *_sample("ansible-playboo", 101, 1.1, 8),
        _fork("ansible-playboo", 101, 102, 1.2),  # the multiplexer, forked from the main process
        _fork("ansible-playboo", 101, 103, 1.3),  # a worker
        _fork("ansible-playboo", 101, 103, 1.3).replace("FORK(103:103)", "FORK(101:150)"),  # a thread
        *_sample("ansible-playboo", 103, 1.31, 4),
        _fork("ansible-playboo", 101, 104, 1.4),  # another worker
        *_sample("ansible-playboo", 104, 1.41, 2),
        _fork("ansible-playboo", 102, 105, 1.5),  # the mux's ssh client
        _exec("ssh", 105, 1.5),
        *_sample("ssh", 105, 1.51, 3),
        *_sample("ansible-playboo", 102, 1.6, 5),
        _fork("sshd", 200, 201, 1.7),  # a target's login and its interpreter
        _exec("python3", 201, 1.7),
        *_sample("python3", 201, 1.71, 6),
        *_sample("sshd", 200, 1.8, 1),
        *_sample("kworker/0:1", 7, 1.9, 2),
        *_sample("swapper", 0, 1.9, 9),
        "%16s %d/%d %12.6f: PERF_RECORD_EXIT(103:103):(101:101)" % ("ansible-playboo", 103, 103, 2.0),
    ]
    return "\n".join(lines) + "\n"


def test_each_process_is_counted_in_its_role():
    result = split(parse(_run()))
    assert result.ms == {"main": 2.0, "workers": 1.5, "mux": 1.25, "ssh": 0.75, "targets": 1.75, "other": 0.5}
    assert result.workers == 2
    assert result.worker_median_ms == 0.75  # 1.0 and 0.5 ms


def test_a_worker_that_forks_a_multiplexer_keeps_only_its_own_cpu():
    # Under a built-in strategy the first worker starts the mux: the mux is not the worker's.
    text = _run().replace("PERF_RECORD_FORK(102:102):(101:101)", "PERF_RECORD_FORK(102:102):(103:103)")
    result = split(parse(text))
    assert result.ms["mux"] == 1.25
    assert result.ms["workers"] == 1.5
    assert result.workers == 2


def test_the_timeline_puts_each_sample_in_its_slice_from_the_playbooks_start():
    slices = dict(timeline(_run(), 0.5))
    assert sorted(slices) == [0.0, 0.5]  # samples from 1.1 s to 1.9 s; the playbook started at 1.0 s
    assert slices[0.0]["main"] == 2.0 and slices[0.0]["workers"] == 1.5
    assert slices[0.5]["targets"] == 1.75 and slices[0.5]["other"] == 0.5
