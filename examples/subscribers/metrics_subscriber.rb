# frozen_string_literal: true

require "tasker_events"

# The metrics subscriber of the domain events design: process-wide counters of the in-process
# events, kept on the class so that any code can read them.
#
#   TaskerEvents::SubscriberRegistry.instance
#     .register(DomainEvents::Subscribers::MetricsSubscriber).start_all!
#   DomainEvents::Subscribers::MetricsSubscriber.events_by_namespace # => {"payments" => 3}
module DomainEvents
  module Subscribers
    # Counts events by outcome of the step that fired them (its execution_result) and by
    # namespace. Events published with TaskerEvents.publish and no execution_result count as
    # failures, as in the design.
    class MetricsSubscriber < TaskerCore::DomainEvents::BaseSubscriber
      subscribes_to "*"

      COUNTERS = %i[events_received success_events failure_events events_by_namespace
                    last_event_at].freeze
      private_constant :COUNTERS

      # The drain thread writes the counters while any other thread may read them. One mutex
      # for the class's lifetime: replacing it in reset_counters! (as the design does) would
      # let a reset and an increment hold different locks at once.
      @mutex = Mutex.new

      class << self
        # @return [Integer]
        def events_received = synchronize { @events_received }

        # @return [Integer]
        def success_events = synchronize { @success_events }

        # @return [Integer]
        def failure_events = synchronize { @failure_events }

        # @return [Hash{String => Integer}] a copy, so callers never see it change under them
        def events_by_namespace = synchronize { @events_by_namespace.dup }

        # @return [Time, nil]
        def last_event_at = synchronize { @last_event_at }

        def reset_counters!
          synchronize do
            @events_received = 0
            @success_events = 0
            @failure_events = 0
            @events_by_namespace = Hash.new(0)
            @last_event_at = nil
          end
        end

        # Adds one to the counter named `counter`.
        def increment(counter)
          synchronize { instance_variable_set(counter_ivar(counter), read(counter) + 1) }
        end

        # Adds one to the entry `key` of the Hash counter named `counter`.
        def increment_hash(counter, key)
          synchronize { read(counter)[key] += 1 }
        end

        def set(counter, value)
          synchronize { instance_variable_set(counter_ivar(counter), value) }
        end

        private

        def synchronize(&)
          @mutex.synchronize(&)
        end

        def read(counter)
          instance_variable_get(counter_ivar(counter))
        end

        # Only the declared counters: a typo must fail loudly, not start a new counter.
        def counter_ivar(counter)
          return :"@#{counter}" if COUNTERS.include?(counter)

          raise ArgumentError, "unknown counter #{counter.inspect}"
        end
      end

      reset_counters!

      def handle(event)
        metadata = event[:metadata] || {}
        execution_result = event[:execution_result] || {}

        self.class.increment(:events_received)
        self.class.increment(execution_result[:success] ? :success_events : :failure_events)
        self.class.increment_hash(:events_by_namespace, metadata[:namespace] || "unknown")
        self.class.set(:last_event_at, Time.now)
      end
    end
  end
end
