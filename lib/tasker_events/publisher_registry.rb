# frozen_string_literal: true

require "singleton"

module TaskerEvents
  # The publishers that task templates can name with `publisher:`.
  #
  # A template's value matches a registered name exactly or, failing that, the one registered
  # name that ends with `::<value>` (templates write both `PaymentEventPublisher` and
  # `DomainEvents::Publishers::PaymentEventPublisher`).
  class PublisherRegistry
    include Singleton

    def initialize
      @mutex = Mutex.new
      @publishers = {}.freeze
      @frozen = false
    end

    # @param publisher [BasePublisher]
    # @return [self]
    # @raise [ValidationError] for a non-publisher, one without a name, or a duplicate name
    # @raise [Error] after {#freeze!}
    def register(publisher)
      unless publisher.is_a?(BasePublisher)
        raise ValidationError, "#{publisher.inspect} is not a TaskerEvents::BasePublisher"
      end

      @mutex.synchronize do
        name = registrable_name(publisher)
        @publishers = @publishers.merge(name => publisher).freeze
      end
      self
    end

    # @param name [String] a registered name, or its last `::` segments
    # @return [BasePublisher, nil]
    def get(name)
      publishers = @publishers
      return publishers[name] if publishers.key?(name)

      matches = publishers.keys.select { |key| key.end_with?("::#{name}") }
      matches.size == 1 ? publishers[matches.first] : nil
    end

    # @return [BasePublisher]
    # @raise [UnknownPublisherError] naming the publisher and what is registered
    def get_strict(name)
      get(name) || raise(UnknownPublisherError,
                         "no publisher registered as #{name.inspect}; " \
                         "registered: #{registered_names.join(", ")}")
    end

    # @return [Boolean]
    def registered?(name)
      !get(name).nil?
    end

    # @return [Array<String>]
    def registered_names
      @publishers.keys
    end

    # @return [BasePublisher, nil] the removed publisher
    def unregister(name)
      @mutex.synchronize do
        publisher = @publishers[name]
        @publishers = @publishers.except(name).freeze
        publisher
      end
    end

    # Refuses further registrations, e.g. once a worker has booted.
    # @return [self]
    def freeze!
      @frozen = true
      self
    end

    # @return [Boolean]
    def frozen?
      @frozen
    end

    # Forgets every publisher and unfreezes.
    # @return [self]
    def reset!
      @mutex.synchronize do
        @publishers = {}.freeze
        @frozen = false
      end
      self
    end

    private

    def registrable_name(publisher)
      raise Error, "the publisher registry is frozen; register publishers before freeze!" if @frozen

      name = publisher.name.to_s
      if @publishers.key?(name)
        raise ValidationError,
              "a publisher named #{name.inspect} is already registered"
      end

      name
    end
  end
end
