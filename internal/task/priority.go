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
//
// With shards scan queues (Shard) each weighs 9 and the urgent queue
// shards, so an on-demand refresh keeps its one take in ten.
func ServerQueues(q string, shards int) map[string]int {
	shards = max(shards, 1)
	out := map[string]int{UrgentQueue(q): shards}
	for _, name := range ShardNames(q, shards) {
		out[name] = 9
	}
	return out
}
