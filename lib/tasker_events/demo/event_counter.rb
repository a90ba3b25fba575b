# frozen_string_literal: true

module TaskerEvents
  class Demo
    # Counts every in-process event, whatever its name: `#` alone matches them all.
    class EventCounter < TaskerEvents::BaseSubscriber
      subscribes_to "#"

      # @param _event [Hash]
      def handle(_event)
        @count = count + 1
      end

      # @return [Integer] events handled so far
      def count = @count || 0
    end
  end
end
