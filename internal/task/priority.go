package task

// ServerQueues is the queue set a refresher serves for the queue named q:
// its on-demand (urgent) queue and its scan queue, weighted 1 to 9 without
// strict priority.
//
// asynq's processor takes one task at a time from a single loop, trying the
// queues in order until one has a task. With strict priority the empty
// urgent queue was tried first on every take: two Redis round trips per
// task instead of one, which made that loop the refresher's bottleneck
// (docs/benchmarks.md, figures 2 and 3). Weighted, the scan queue is tried
// first on 9 takes in 10, and an on-demand refresh still overtakes any
// backlog of scanned ones: it waits for a handful of takes (on average 10),
// not for the backlog.
func ServerQueues(q string) map[string]int {
	return map[string]int{UrgentQueue(q): 1, q: 9}
}
