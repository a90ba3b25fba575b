# frozen_string_literal: true

require "rspec/core"
require "rspec/expectations"
require "tasker_events"

module TaskerEvents
  # RSpec support for the suites of applications that publish domain events. In
  # `spec_helper.rb`:
  #
  #   require "tasker_events/rspec"
  #
  # Every example group then has {Helpers} (the matcher `have_published_domain_event`,
  # `published_domain_events`, `captured_domain_messages`, `build_domain_event`); examples
  # tagged `:tasker_events_test_mode` run in test mode with an empty capture (see
  # {.start_test_mode!}); and two shared examples check users' own classes:
  #
  #   it_behaves_like "a tasker_events subscriber", PaymentAudit
  #   it_behaves_like "a tasker_events publisher", PaymentEventPublisher.new
  #
  # In test mode durable events are captured in memory inside the Rust core instead of written
  # to PGMQ, while fast delivery, patterns, conditions, schemas and publishers run for real;
  # see {TaskerEvents::TestMode}. The matcher reads the core's log of routed events rather than
  # subscribing to them, so it adds nothing to the counters of {TaskerEvents.stats} and never
  # changes what users' subscribers receive.
  #
  # @example
  #   RSpec.describe PaymentHandler, :tasker_events_test_mode do
  #     it "announces the payment" do
  #       expect { described_class.new.call(task) }
  #         .to have_published_domain_event("payment.processed")
  #         .with_payload(hash_including(amount: 99.99))
  #         .with_metadata(namespace: "payments")
  #         .in_mode(:broadcast).once
  #     end
  #   end
  module RSpec
    # The metadata that runs an example in test mode.
    TAG = :tasker_events_test_mode

    @flush_timeout = 5
    @test_mode_settings = {}

    class << self
      # @return [Numeric] seconds the matcher and helpers wait for events in flight (default 5)
      attr_accessor :flush_timeout

      # @return [Hash] settings for {TaskerEvents.start} when a tagged example starts test mode,
      #   e.g. `{ templates: ["config/tasks/**/*.yaml"] }`
      attr_accessor :test_mode_settings

      # Starts TaskerEvents in test mode unless it already runs in test mode, and empties the
      # capture either way, so that an example sees only its own events.
      # @param settings [Hash] as for {TaskerEvents.start}, merged over {.test_mode_settings};
      #   they apply only when this call starts the system
      # @return [Boolean] true when this call started the system
      # @raise [Error] when TaskerEvents runs without test mode: shut it down first
      def start_test_mode!(**settings)
        started = false
        if TaskerEvents.started?
          unless TaskerEvents.test_mode?
            raise Error, "TaskerEvents is running without test_mode; call TaskerEvents.shutdown " \
                         "before starting test mode"
          end
        else
          started = TaskerEvents.start(**test_mode_settings.merge(settings, test_mode: true))
        end
        TaskerEvents.clear_captured
        started
      end

      # Builds an event as {TaskerEvents.publish} would, without publishing it: a frozen Hash
      # with symbol keys whose `:payload` is the given object (for a durable event, its JSON form
      # with symbol keys). For calling a subscriber's `handle` directly. The payload is checked
      # as for PGMQ in every mode, so a value no consumer could read fails the test.
      # @param event_name [String]
      # @param payload [Hash]
      # @param namespace [String]
      # @param delivery_mode [Symbol] :durable, :fast or :broadcast
      # @param metadata [Hash] extra metadata beside the standard fields
      # @return [Hash{Symbol => Object}]
      # @raise [ValidationError] for an invalid name, namespace, mode or payload, naming it
      def build_event(event_name, payload = {}, namespace: "sample", delivery_mode: :fast,
                      metadata: {})
        Native.build_event(event_name.to_s, payload, namespace.to_s, delivery_mode.to_s,
                           metadata)
      end

      # Defines the shared examples in `target`: RSpec itself (done on require), or a
      # sandboxed RSpec world.
      # @param target [#shared_examples]
      # @return [void]
      def define_shared_examples(target = ::RSpec)
        SubscriberExamples.define(target)
        PublisherExamples.define(target)
      end

      # Includes {Helpers} in every example group and runs examples tagged {TAG} in test mode.
      # Done on require.
      # @param config [RSpec::Core::Configuration]
      # @return [void]
      def install(config = ::RSpec.configuration)
        config.include(Helpers)
        config.before(:each, TAG) { TaskerEvents::RSpec.start_test_mode! }
      end
    end
  end
end

require_relative "rspec/recording"
require_relative "rspec/recorder"
require_relative "rspec/event_criteria"
require_relative "rspec/have_published_domain_event"
require_relative "rspec/helpers"
require_relative "rspec/subscriber_checks"
require_relative "rspec/subscriber_examples"
require_relative "rspec/publisher_checks"
require_relative "rspec/publisher_examples"

TaskerEvents::RSpec.install
TaskerEvents::RSpec.define_shared_examples
