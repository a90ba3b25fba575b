# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # The steps of the "a tasker_events subscriber" examples ({SubscriberExamples}), included in
    # their example group. Names start with `tasker_events_` so as not to clash with the
    # including suite's own helpers.
    # @api private
    module SubscriberChecks
      # Raised inside `handle` by the example that checks error reporting.
      class SampleError < StandardError; end

      # A frozen event, built by the core, whose name matches `pattern`. Its payload is a frozen
      # copy of the sample payload: subscribers share the published object with each other and
      # with the step, so one that changes it fails here.
      # @return [Hash{Symbol => Object}]
      def tasker_events_sample_event(pattern)
        TaskerEvents::RSpec.build_event(SubscriberExamples.sample_name(pattern.to_s),
                                        tasker_events_frozen_copy(tasker_events_sample_payload),
                                        namespace: "sample")
      end

      private

      def tasker_events_frozen_copy(value)
        case value
        when Hash
          value.to_h { |k, v| [tasker_events_frozen_copy(k), tasker_events_frozen_copy(v)] }.freeze
        when Array then value.map { |item| tasker_events_frozen_copy(item) }.freeze
        when String then value.frozen? ? value : value.dup.freeze
        else value
        end
      end

      def tasker_events_check_pattern(pattern)
        expect { TaskerEvents::Native.validate_pattern(pattern.to_s) }.not_to raise_error
        name = SubscriberExamples.sample_name(pattern.to_s)
        expect(TaskerEvents::Native.pattern_matches?(pattern.to_s, name)).to be(true)
        TaskerEvents::RSpec.build_event(name)
      rescue ValidationError => e
        ::RSpec::Expectations.fail_with(
          "pattern #{pattern.inspect} matches no valid event name (#{e.message}): event " \
          "names are lowercase a-z0-9_ segments joined by dots, at least two of them"
        )
      end

      def tasker_events_check_arity(method, count)
        expect(SubscriberExamples.takes?(method, count))
          .to be(true), "#{method.owner}##{method.name} cannot be called with #{count} " \
                        "argument(s): its parameters are #{method.parameters.inspect}"
      end

      # The hooks in the drain thread's order, letting any exception out.
      def tasker_events_run_hooks(event)
        subscriber = tasker_events_subscriber
        return unless subscriber.before_handle(event)

        subscriber.handle(event)
        subscriber.after_handle(event)
      end

      def tasker_events_check_error_reporting
        subscriber = tasker_events_subscriber
        event = tasker_events_sample_event(subscriber.patterns.first)
        error = SampleError.new("raised by the tasker_events shared examples")
        reported = tasker_events_spy_on_errors(subscriber)
        subscriber.define_singleton_method(:handle) { |_event| raise error }

        handled = tasker_events_quietly { subscriber.dispatch(event) }
        tasker_events_check_reported(reported, [[event, error]])
        expect(handled).to be(false)
      end

      def tasker_events_check_reported(reported, expected)
        expect(reported).to eq(expected),
                            "on_handle_error was given #{reported.inspect} instead of " \
                            "(event, error); if before_handle skips the sample event, give " \
                            "one it takes with let(:tasker_events_sample_payload)"
      end

      # Records each call of on_handle_error, then runs the subscriber's own.
      def tasker_events_spy_on_errors(subscriber)
        reported = []
        original = subscriber.method(:on_handle_error)
        subscriber.define_singleton_method(:on_handle_error) do |*args|
          reported << args
          original.call(*args)
        end
        reported
      end

      # The subscriber logs the error it reports; that line would only be noise here.
      def tasker_events_quietly
        logger = TaskerEvents.logger
        TaskerEvents.logger = Logger.new(File::NULL, level: logger.level)
        yield
      ensure
        TaskerEvents.logger = logger
      end
    end
  end
end
