# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # Methods for examples; `require "tasker_events/rspec"` includes them in every example
    # group. Each needs test mode (tag the example `:tasker_events_test_mode`, or call
    # {RSpec.start_test_mode!}) except {#build_domain_event}.
    module Helpers
      # A block matcher of the events the block publishes; see {HavePublishedDomainEvent}.
      # @param event_name [String, Symbol, Regexp, #===]
      # @return [HavePublishedDomainEvent]
      # @example
      #   expect { publish_payment }
      #     .to have_published_domain_event("payment.processed").in_mode(:broadcast).once
      #
      # (Named as RSpec matchers are, for how the expectation reads; it is not a predicate.)
      def have_published_domain_event(event_name) # rubocop:disable Naming/PredicateName
        HavePublishedDomainEvent.new(event_name)
      end

      # The events published in the block, after flushing before and after it.
      # @return [Recording]
      def record_domain_events(&)
        Recorder.new.record(&)
      end

      # Every event captured since the capture was last emptied (by {RSpec.start_test_mode!}
      # or {TaskerEvents.clear_captured}), after a flush.
      # @param delivery_mode [Symbol, nil] only this mode's events
      # @return [Array<Hash{Symbol => Object}>]
      def published_domain_events(delivery_mode: nil)
        Recorder.new.events(delivery_mode:)
      end

      # The durable messages captured instead of written to PGMQ, after a flush.
      # @param namespace [String, nil] only this namespace's queue
      # @return [Array<Hash{Symbol => Object}>] see {TaskerEvents::TestMode#captured_messages}
      def captured_domain_messages(namespace: nil)
        Recorder.new.messages(namespace:)
      end

      # An event as {TaskerEvents.publish} would build it, for calling a subscriber directly.
      # @return [Hash{Symbol => Object}] see {RSpec.build_event}
      def build_domain_event(event_name, payload = {}, **options)
        TaskerEvents::RSpec.build_event(event_name, payload, **options)
      end
    end
  end
end
