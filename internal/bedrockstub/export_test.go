package bedrockstub

// FramesSent reports how many event-stream frames the server has written.
func (s *Server) FramesSent() int64 { return s.frames.Load() }
