# frozen_string_literal: true

module TaskerEvents
  # An `exit` called by subscriber or publisher code on the drain thread. The process must exit
  # as asked, but only after the exit hook's shutdown has delivered what is queued: raising the
  # exit into the main thread while it shuts down would cut that delivery short. So during a
  # shutdown the exit waits, and the main thread raises it once the shutdown is over.
  class ExitRequest
    def initialize
      @pending = nil
      @shutting_down = false
    end

    # Runs a shutdown; exits afterwards if an exit was requested meanwhile.
    # @return [Object] what the block returned
    # @raise [SystemExit] the exit requested during the block, on the main thread
    def around_shutdown
      @shutting_down = true
      result = yield
      @shutting_down = false
      exit = @pending
      @pending = nil
      raise exit if exit && Thread.current.equal?(Thread.main)

      result
    ensure
      @shutting_down = false
    end

    # @param exit [SystemExit]
    def request(exit)
      if @shutting_down
        @pending = exit
      else
        Thread.main.raise(exit)
      end
    end
  end
end
