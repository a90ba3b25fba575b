# frozen_string_literal: true

require "securerandom"

module TaskerEvents
  module RSpec
    # The shared examples "a tasker_events publisher", for users' own publishers:
    #
    #   it_behaves_like "a tasker_events publisher", PaymentEventPublisher.new
    #
    # They check the contract {PublisherRunner} relies on: a {BasePublisher} whose `name` is a
    # non-empty String; hooks that take `(step_result, event_declaration)` with or without a
    # step context, as tasker-core calls them; `should_publish?` answering true or false;
    # `transform_payload` and `additional_metadata` returning Hashes that have a JSON form; the
    # other hooks not raising. Each hook gets frozen, symbol-keyed arguments, as on the drain
    # thread, for every pair of sample step result and event declaration. The samples are a
    # success and a permanent failure of a step declaring one event; give your own in the
    # block:
    #
    #   it_behaves_like "a tasker_events publisher", PaymentEventPublisher.new do
    #     let(:tasker_events_step_results) { [{ success: true, result: { amount: 1 } }] }
    #     let(:tasker_events_event_declarations) { [{ name: "payment.processed" }] }
    #     let(:tasker_events_step_context) { { namespace: "payments", attempt: 1 } }
    #   end
    module PublisherExamples
      # The name to give `it_behaves_like`.
      NAME = "a tasker_events publisher"

      # The hooks called with (step_result, event_declaration, step_context = nil).
      HOOKS = %i[should_publish? transform_payload additional_metadata before_publish
                 after_publish].freeze

      class << self
        # @param target [#shared_examples] RSpec, or a sandboxed RSpec world
        # @return [void]
        def define(target)
          target.shared_examples(NAME) do |publisher|
            include PublisherChecks

            let(:tasker_events_publisher) { publisher }
            let(:tasker_events_step_results) { PublisherExamples.sample_step_results }
            let(:tasker_events_event_declarations) { [PublisherExamples.sample_declaration] }
            let(:tasker_events_step_context) { PublisherExamples.sample_context }

            PublisherExamples.define_identity_examples(self)
            PublisherExamples.define_hook_examples(self)
          end
        end

        # @api private
        def define_identity_examples(group)
          group.it("is a TaskerEvents::BasePublisher, as PublisherRegistry requires") do
            expect(tasker_events_publisher).to be_a(TaskerEvents::BasePublisher)
          end
          group.it("has a name that is a non-empty String") do
            expect(tasker_events_publisher.name).to be_a(String).and match(/\S/)
          end
          group.it("takes hook arguments with and without a step context") do
            tasker_events_check_arities
          end
        end

        # @api private
        def define_hook_examples(group)
          group.it("answers should_publish? with true or false") do
            tasker_events_each_call { |args, label| tasker_events_check_boolean(args, label) }
          end
          %i[transform_payload additional_metadata].each do |hook|
            group.it("returns from #{hook} a Hash that has a JSON form") do
              tasker_events_each_call { |args, label| tasker_events_check_hash(hook, args, label) }
            end
          end
          group.it("runs before_publish, after_publish and on_publish_error without raising") do
            tasker_events_each_call { |args, _label| tasker_events_check_quiet_hooks(args) }
          end
        end

        # @return [Array<Hash>] a success and a permanent failure, frozen
        def sample_step_results
          [{ success: true, retryable: false, result: { sample: true },
             metadata: { execution_time_ms: 1 } },
           { success: false, retryable: false, result: { error: "sample failure" },
             metadata: { error_code: "sample_error", error_message: "sample failure",
                         execution_time_ms: 1 } }].map { |result| deep_freeze(result) }
        end

        # @return [Hash] a declaration as publishers receive it, frozen
        def sample_declaration
          deep_freeze({ name: "sample.event_published", description: nil, condition: "always",
                        delivery_mode: "durable", publisher: nil, schema: nil })
        end

        # @return [Hash] a step context as publishers receive it, frozen
        def sample_context
          task_uuid = SecureRandom.uuid
          deep_freeze({ task_uuid:, step_uuid: SecureRandom.uuid, step_name: "sample_step",
                        namespace: "sample", task_name: "sample_task", task_version: "1.0.0",
                        correlation_id: task_uuid, attempt: 1 })
        end

        # Frozen all the way down, with symbol keys, as hooks receive their arguments.
        # @return [Object]
        def deep_freeze(value)
          case value
          when Hash then value.to_h { |key, item| [key.to_sym, deep_freeze(item)] }.freeze
          when Array then value.map { |item| deep_freeze(item) }.freeze
          else value.freeze
          end
        end
      end
    end
  end
end
