# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # The steps of the "a tasker_events publisher" examples ({PublisherExamples}), included in
    # their example group. Names start with `tasker_events_` so as not to clash with the
    # including suite's own helpers.
    # @api private
    module PublisherChecks
      # Handed to on_publish_error by the example that checks it.
      class SampleError < StandardError; end

      private

      # Yields the hook arguments for every sample step result and declaration, and a label
      # that names them in failure messages.
      def tasker_events_each_call
        context = PublisherExamples.deep_freeze(tasker_events_step_context)
        tasker_events_step_results.each do |result|
          result = PublisherExamples.deep_freeze(result)
          tasker_events_event_declarations.each do |declaration|
            declaration = PublisherExamples.deep_freeze(declaration)
            yield [result, declaration, context],
                  "for event #{declaration[:name].inspect} and step result #{result.inspect}"
          end
        end
      end

      def tasker_events_check_arities
        PublisherExamples::HOOKS.each do |hook|
          [2, 3].each { |count| tasker_events_check_arity(hook, count) }
        end
        tasker_events_check_arity(:on_publish_error, 4)
      end

      def tasker_events_check_arity(hook, count)
        method = tasker_events_publisher.method(hook)
        expect(SubscriberExamples.takes?(method, count))
          .to be(true), "#{method.owner}##{hook} cannot be called with #{count} arguments: " \
                        "its parameters are #{method.parameters.inspect}"
      end

      def tasker_events_check_boolean(args, label)
        answer = tasker_events_publisher.should_publish?(*args)
        expect([true, false])
          .to include(answer), "should_publish? returned #{answer.inspect} #{label}"
      end

      def tasker_events_check_hash(hook, args, label)
        value = tasker_events_publisher.public_send(hook, *args)
        expect(value).to be_a(Hash), "#{hook} returned #{value.inspect} #{label}"
        payload, metadata = hook == :transform_payload ? [value, {}] : [{}, value]
        problem = tasker_events_json_problem(payload, metadata)
        expect(problem).to be_nil, "#{hook} returned a Hash without a JSON form (#{problem}) " \
                                   "#{label}"
      end

      # @return [String, nil] why the core would refuse this payload or metadata
      def tasker_events_json_problem(payload, metadata)
        TaskerEvents::RSpec.build_event("sample.event", payload, metadata:)
        nil
      rescue ValidationError => e
        e.message
      end

      def tasker_events_check_quiet_hooks(args)
        error = SampleError.new("given by the tasker_events shared examples")
        expect { tasker_events_publisher.before_publish(*args) }.not_to raise_error
        expect { tasker_events_publisher.after_publish(*args) }.not_to raise_error
        expect { tasker_events_publisher.on_publish_error(*args, error) }.not_to raise_error
      end
    end
  end
end
