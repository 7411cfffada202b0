import threading
import time

from runtime.search.rwlock import RWLock


def test_writer_excludes_readers():
    lock = RWLock()
    log = []

    def reader(i):
        with lock.read():
            log.append(("r", i))
            time.sleep(0.01)

    def writer():
        with lock.write():
            log.append(("w+", 0))
            time.sleep(0.02)
            log.append(("w-", 0))

    ts = [threading.Thread(target=reader, args=(i,)) for i in range(3)] + [threading.Thread(target=writer)]
    ts += [threading.Thread(target=reader, args=(i,)) for i in range(3, 6)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    i = log.index(("w+", 0))
    assert log[i + 1] == ("w-", 0) and len(log) == 8
