# frozen_string_literal: true

module TaskerEvents
  class Demo
    # Prints fast and broadcast payment events the moment the drain thread hands them over,
    # to show that in-process delivery needs no polling.
    class PaymentNotifier < TaskerEvents::BaseSubscriber
      subscribes_to "payment.*"

      # @param out [IO] where the lines go
      def initialize(out)
        super()
        @out = out
      end

      # @param event [Hash]
      def handle(event)
        @out.puts format(
          "  [subscriber] %<name>-20s %<mode>-9s amount=%<amount>-7s event_id=%<id>s",
          name: event[:event_name], mode: event[:delivery_mode],
          amount: event[:payload][:amount], id: event[:event_id]
        )
      end
    end
  end
end
