// Package objstoretest is the acceptance suite every objstore.Store adapter
// must pass: memory, filesystem, fault wrapper and S3 (against MinIO) run
// the same checks, so a behaviour one adapter has and another lacks shows up
// as a failing test rather than as a production surprise.
//
// Usage, in an adapter's tests:
//
//	func TestAcceptance(t *testing.T) {
//		objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t) })
//	}
//
// newStore must return an empty store (or an empty prefix of a shared one)
// on every call; Run calls it once per subtest and runs subtests serially.
//
// It also holds Process, the tortures' model of the process a component
// runs in: wrapped around the store the component uses, it freezes every
// call (Freeze, Thaw), lets a dying process's calls go out or not with no
// answer (Crash), and freezes a process with an answered read still unread
// (FreezeAfterReply). Process is safe for concurrent use.
package objstoretest
