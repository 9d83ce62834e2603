// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ArtistCoin} from "./ArtistCoin.sol";
import {DividendDistributor} from "./DividendDistributor.sol";
import {MasterNFT} from "./MasterNFT.sol";

/// @title AudiFiFactory: deploys every AudiFi child contract, so an indexer finds them all
///        from its events. Ids are the 16 bytes of the off-chain UUIDs and are used once.
contract AudiFiFactory {
    event MasterDeployed(
        bytes16 indexed masterId,
        address indexed nft,
        address indexed distributor,
        uint256 totalSupply
    );
    event ArtistCoinDeployed(
        bytes16 indexed artistId,
        address indexed token,
        string symbol,
        uint8 decimals
    );

    error NotOwner();
    error IdUsed(bytes16 id);
    error ZeroSupply();

    struct Master {
        bytes16 masterId;
        MasterNFT nft;
        DividendDistributor distributor;
    }

    struct Artist {
        bytes16 artistId;
        ArtistCoin token;
    }

    /// @notice Deploys children whose admin is this owner.
    address public immutable owner;
    Master[] private _masters;
    Artist[] private _artists;
    mapping(bytes16 => bool) public masterIdUsed;
    mapping(bytes16 => bool) public artistIdUsed;

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    function deployMaster(bytes16 masterId, uint256 totalSupply)
        external
        onlyOwner
        returns (MasterNFT nft, DividendDistributor distributor)
    {
        if (totalSupply == 0) revert ZeroSupply();
        if (masterIdUsed[masterId]) revert IdUsed(masterId);
        masterIdUsed[masterId] = true;
        nft = new MasterNFT(msg.sender, totalSupply);
        distributor = new DividendDistributor(nft);
        _masters.push(Master(masterId, nft, distributor));
        emit MasterDeployed(masterId, address(nft), address(distributor), totalSupply);
    }

    function deployArtistCoin(bytes16 artistId, string calldata symbol, uint8 decimals)
        external
        onlyOwner
        returns (ArtistCoin token)
    {
        if (artistIdUsed[artistId]) revert IdUsed(artistId);
        artistIdUsed[artistId] = true;
        token = new ArtistCoin(msg.sender, symbol, decimals);
        _artists.push(Artist(artistId, token));
        emit ArtistCoinDeployed(artistId, address(token), symbol, decimals);
    }

    function mastersCount() external view returns (uint256) {
        return _masters.length;
    }

    function masterAt(uint256 i)
        external
        view
        returns (bytes16 masterId, address nft, address distributor, uint256 totalSupply)
    {
        Master storage m = _masters[i];
        return (m.masterId, address(m.nft), address(m.distributor), m.nft.totalSupply());
    }

    function artistCoinsCount() external view returns (uint256) {
        return _artists.length;
    }

    function artistCoinAt(uint256 i) external view returns (bytes16 artistId, address token) {
        Artist storage a = _artists[i];
        return (a.artistId, address(a.token));
    }
}
