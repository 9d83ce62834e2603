// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title ArtistCoin: the fungible coin of one artist.
/// @notice Minimal ERC-20 core. It emits only the AudiFi `Transfer` event (no allowances,
///         so no Approval events); amounts are full uint256. The admin mints, moves and burns
///         in batches so that one transaction can emit hundreds of events.
contract ArtistCoin {
    event Transfer(address indexed from, address indexed to, uint256 value);

    error NotAdmin();
    error ZeroAddress();
    error LengthMismatch();
    error InsufficientBalance(address holder, uint256 balance, uint256 needed);

    address public immutable admin;
    uint8 public immutable decimals;
    string public symbol;
    uint256 public totalSupply;

    mapping(address => uint256) public balanceOf;

    constructor(address admin_, string memory symbol_, uint8 decimals_) {
        admin = admin_;
        symbol = symbol_;
        decimals = decimals_;
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin();
        _;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    /// @notice Burns from the caller's balance: Transfer to 0x0.
    function burn(uint256 value) external {
        _burn(msg.sender, value);
    }

    /// @notice Mints amounts[i] to to[i]; totalSupply overflow reverts.
    function mintBatch(address[] calldata to, uint256[] calldata amounts) external onlyAdmin {
        if (to.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < to.length; ++i) {
            if (to[i] == address(0)) revert ZeroAddress();
            totalSupply += amounts[i];
            unchecked {
                balanceOf[to[i]] += amounts[i]; // cannot overflow: bounded by totalSupply
            }
            emit Transfer(address(0), to[i], amounts[i]);
        }
    }

    /// @notice Load generation: moves amounts[i] from from[i] to to[i], one Transfer each.
    function adminTransferBatch(
        address[] calldata from,
        address[] calldata to,
        uint256[] calldata amounts
    ) external onlyAdmin {
        if (from.length != to.length || to.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < from.length; ++i) {
            _move(from[i], to[i], amounts[i]);
        }
    }

    /// @notice Load generation: burns amounts[i] from from[i], one Transfer to 0x0 each.
    function adminBurnBatch(address[] calldata from, uint256[] calldata amounts)
        external
        onlyAdmin
    {
        if (from.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < from.length; ++i) {
            _burn(from[i], amounts[i]);
        }
    }

    function _move(address from, address to, uint256 value) private {
        if (to == address(0)) revert ZeroAddress();
        _debit(from, value);
        unchecked {
            balanceOf[to] += value; // cannot overflow: bounded by totalSupply
        }
        emit Transfer(from, to, value);
    }

    function _burn(address from, uint256 value) private {
        _debit(from, value);
        unchecked {
            totalSupply -= value; // cannot underflow: value <= balance <= totalSupply
        }
        emit Transfer(from, address(0), value);
    }

    function _debit(address from, uint256 value) private {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            balanceOf[from] = balance - value;
        }
    }
}
