package session

// CleanupGoroutines lets the external tests count a store's cleanup loops.
var CleanupGoroutines = cleanupGoroutines
