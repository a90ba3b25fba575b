# frozen_string_literal: true

require "singleton"

module TaskerEvents
  # Holds the process's Ruby subscribers and routes each delivery from the drain thread to the
  # subscribers whose patterns matched it (matching happens in the Rust core).
  #
  # @example
  #   registry = TaskerEvents::SubscriberRegistry.instance
  #   registry.register(PaymentAudit)
  #   registry.start_all!
  class SubscriberRegistry
    include Singleton

    def initialize
      @mutex = Mutex.new
      @classes = []
      @instances = []
      @active = {}.freeze
      @next_id = 0
      @started = false
    end

    # Registers a subscriber class; it is instantiated by {#start_all!}.
    # @param subscriber_class [Class] a {BaseSubscriber} subclass with patterns
    # @return [self]
    def register(subscriber_class)
      unless subscriber_class.is_a?(Class) && subscriber_class <= BaseSubscriber
        raise ValidationError, "#{subscriber_class.inspect} is not a TaskerEvents::BaseSubscriber"
      end

      check_patterns(subscriber_class, subscriber_class.patterns)
      @mutex.synchronize { @classes << subscriber_class unless @classes.include?(subscriber_class) }
      start_all! if started?
      self
    end

    # Registers a subscriber object, for subscribers that need constructor arguments.
    # @param subscriber [BaseSubscriber]
    # @return [self]
    def register_instance(subscriber)
      unless subscriber.is_a?(BaseSubscriber)
        raise ValidationError, "#{subscriber.inspect} is not a TaskerEvents::BaseSubscriber"
      end

      check_patterns(subscriber.class, subscriber.patterns)
      @mutex.synchronize { @instances << subscriber unless @instances.include?(subscriber) }
      activate(subscriber) if started?
      self
    end

    # Instantiates registered classes and starts delivering to every subscriber. Idempotent.
    # @return [self]
    def start_all!
      pending = @mutex.synchronize do
        @started = true
        fresh = @classes.reject { |klass| @instances.any? { |s| s.instance_of?(klass) } }
        @instances.concat(fresh.map(&:new))
        @instances.reject(&:active?)
      end
      pending.each { |subscriber| activate(subscriber) }
      self
    end

    # Stops delivering to every subscriber; registrations are kept for a later {#start_all!}.
    # @return [self]
    def stop_all!
      subscribers = @mutex.synchronize do
        @started = false
        @instances.select(&:active?)
      end
      subscribers.each { |subscriber| deactivate(subscriber) }
      self
    end

    # Stops every subscriber and forgets every registration.
    # @return [self]
    def reset!
      stop_all!
      @mutex.synchronize do
        @classes.clear
        @instances.clear
      end
      self
    end

    # @return [Boolean] whether {#start_all!} was called since the last {#stop_all!}
    def started?
      @started
    end

    # @return [Integer] how many subscribers are registered (classes not yet instantiated
    #   count once)
    def count
      @mutex.synchronize do
        @instances.size + @classes.count { |k| @instances.none? { |s| s.instance_of?(k) } }
      end
    end

    # @return [Array<BaseSubscriber>] the subscriber objects
    def subscribers
      @mutex.synchronize { @instances.dup }
    end

    # @return [Hash] registration counts and each subscriber's handled and error counts
    def stats
      list = subscribers
      {
        started: started?,
        registered: count,
        active: list.count(&:active?),
        subscribers: list.map do |s|
          { class: s.class.name, patterns: s.patterns, active: s.active?, **s.stats }
        end
      }
    end

    # Stops one subscriber.
    # @api private
    def deactivate(subscriber)
      id = subscriber.subscriber_id
      return unless id

      @mutex.synchronize { @active = @active.reject { |key, _| key == id }.freeze }
      subscriber.deactivate
      Native.unsubscribe(id)
    end

    # Sends every active subscriber's patterns to a newly started core.
    # @api private
    def attach_all
      @active.each { |id, subscriber| Native.subscribe(id, subscriber.patterns) }
    end

    # The active subscriber with this id, for the drain thread.
    # @api private
    def subscriber(id)
      @active[id]
    end

    private

    def activate(subscriber)
      id = @mutex.synchronize do
        @next_id += 1
        @active = @active.merge(@next_id => subscriber).freeze
        @next_id
      end
      subscriber.activate(id)
      Native.subscribe(id, subscriber.patterns)
    end

    def check_patterns(subscriber_class, patterns)
      return unless patterns.empty?

      raise ValidationError, "#{subscriber_class} declares no patterns (use subscribes_to)"
    end
  end
end
