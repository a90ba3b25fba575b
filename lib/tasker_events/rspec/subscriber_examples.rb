# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # The shared examples "a tasker_events subscriber", for users' own subscribers:
    #
    #   it_behaves_like "a tasker_events subscriber", PaymentAudit
    #   it_behaves_like "a tasker_events subscriber", PaymentAudit.new(ledger) # with arguments
    #
    # They check the contract the drain thread relies on: a {BaseSubscriber} with valid
    # patterns, each able to match some event; a `handle` that takes the event; every hook
    # running on a frozen event, built by the core, for each pattern; and an error in `handle`
    # reaching `on_handle_error` instead of escaping. They call the subscriber directly, as the
    # drain thread does, and neither start TaskerEvents nor register anything.
    #
    # A `handle` that needs a payload of some shape gets it from the block:
    #
    #   it_behaves_like "a tasker_events subscriber", PaymentAudit do
    #     let(:tasker_events_sample_payload) { { amount: 99.99 } }
    #   end
    module SubscriberExamples
      # The name to give `it_behaves_like`.
      NAME = "a tasker_events subscriber"

      class << self
        # @param target [#shared_examples] RSpec, or a sandboxed RSpec world
        # @return [void]
        def define(target)
          target.shared_examples(NAME) do |subscriber|
            include SubscriberChecks

            let(:tasker_events_subscriber) do
              subscriber.is_a?(Class) ? subscriber.new : subscriber.clone(freeze: false)
            end
            let(:tasker_events_sample_payload) { {} }

            SubscriberExamples.define_type_examples(self, subscriber)
            SubscriberExamples.define_pattern_examples(self)
            SubscriberExamples.define_handle_examples(self)
            SubscriberExamples.define_error_examples(self)
          end
        end

        # @api private
        def define_type_examples(group, subscriber)
          group.it("is a TaskerEvents::BaseSubscriber, as SubscriberRegistry requires") do
            expect(tasker_events_subscriber).to be_a(TaskerEvents::BaseSubscriber)
          end
          return unless subscriber.is_a?(Class)

          group.it("can be built without arguments, as SubscriberRegistry#register does") do
            expect { subscriber.new }.not_to raise_error
          end
        end

        # @api private
        def define_pattern_examples(group)
          group.it("declares at least one pattern") do
            expect(tasker_events_subscriber.patterns).not_to be_empty,
                                                             "no patterns: call subscribes_to"
          end
          group.it("declares only valid patterns, each matching some event name") do
            tasker_events_subscriber.patterns.each { |p| tasker_events_check_pattern(p) }
          end
        end

        # @api private
        def define_handle_examples(group)
          group.it("has a handle method that takes the event") do
            tasker_events_check_arity(tasker_events_subscriber.method(:handle), 1)
          end
          group.it("runs its hooks on a frozen event for each pattern without raising") do
            tasker_events_subscriber.patterns.each do |pattern|
              event = tasker_events_sample_event(pattern)
              expect { tasker_events_run_hooks(event) }.not_to raise_error
            end
          end
        end

        # @api private
        def define_error_examples(group)
          group.it("passes an error raised in handle to on_handle_error instead of raising it") do
            tasker_events_check_error_reporting
          end
          group.it("accepts (event, error) in on_handle_error without raising") do
            event = tasker_events_sample_event(tasker_events_subscriber.patterns.first)
            error = SubscriberChecks::SampleError.new("given by the tasker_events shared examples")
            expect { tasker_events_subscriber.on_handle_error(event, error) }.not_to raise_error
          end
        end

        # An event name that `pattern` matches: each wildcard becomes the segment "sample".
        # @param pattern [String]
        # @return [String]
        def sample_name(pattern)
          return "sample.event" if %w[* #].include?(pattern)

          pattern.split(".").map { |segment| %w[* #].include?(segment) ? "sample" : segment }
                 .join(".")
        end

        # Whether `method` can be called with `count` positional arguments and nothing else.
        # @param method [Method]
        # @param count [Integer]
        # @return [Boolean]
        def takes?(method, count)
          kinds = method.parameters.map(&:first)
          required = kinds.count(:req)
          return false if kinds.include?(:keyreq) || required > count

          kinds.include?(:rest) || required + kinds.count(:opt) >= count
        end
      end
    end
  end
end
