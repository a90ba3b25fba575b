# frozen_string_literal: true

# Helpers shared by the specs: fresh namespaces, counter deltas, and a subscriber that
# records what it receives.
module EventHelpers
  # A namespace no other example uses, so durable rows never mix between examples.
  def unique_namespace(prefix = "spec")
    "#{prefix}_#{SecureRandom.hex(4)}"
  end

  # The change in one counter of TaskerEvents.stats while the block runs.
  def stat_change(*path)
    before = TaskerEvents.stats.dig(*path)
    yield
    TaskerEvents.stats.dig(*path) - before
  end

  # Defines and registers a subscriber class that collects the events it receives.
  def recording_subscriber(*patterns, &handler)
    klass = Class.new(TaskerEvents::BaseSubscriber) do
      subscribes_to(*patterns)
      define_method(:received) { @received ||= [] }
      define_method(:handle) do |event|
        received << event
        handler&.call(event)
      end
    end
    subscriber = klass.new
    TaskerEvents::SubscriberRegistry.instance.register_instance(subscriber).start_all!
    subscriber
  end
end

RSpec.configure { |config| config.include EventHelpers }
